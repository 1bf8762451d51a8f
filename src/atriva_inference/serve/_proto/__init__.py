"""Generated Open Inference Protocol messages (see regenerate.sh)."""
