"""Neural-network building blocks for lwd (encoders, hypernetworks, denoisers, U-Nets)."""
