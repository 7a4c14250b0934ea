"""Training RD-VLA from recorded bags: episode dataset, optimizer state in safetensors, the trainer."""
