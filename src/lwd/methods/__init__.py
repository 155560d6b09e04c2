"""Learning methods. Each module holds one method's model, losses, training stages and runtime policy."""
