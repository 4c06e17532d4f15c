"""tiedae's Hydra sweeper (``hydra/sweeper=tiedae``); see ``tiedae_sweeper.py``."""
