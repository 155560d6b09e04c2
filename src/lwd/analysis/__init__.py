"""Analysis of what a trained generator learned and does: its latent space (`latents`: `lwd
latents`), whether its latents reproduce demonstrations in the simulator (`reconstruct`: `lwd
reconstruct`), and the expert styles episodes show, demonstrations or rollouts (`styles`)."""
