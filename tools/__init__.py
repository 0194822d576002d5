"""Developer tools of this repository (not deployed with the function)."""
