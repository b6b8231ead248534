"""MSQuant Desktop: one window for LLM quantization jobs, local GPUs and SLURM clusters."""

__version__ = "0.1.0"

APP_NAME = "MSQuant Desktop"
APP_ID = "io.github.msquant.MSQuantDesktop"
