"""Runner: evaluate or score into resumable run folders."""
