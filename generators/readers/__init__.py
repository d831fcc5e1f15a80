"""One reader per checkpoint format; each turns raw file contents into tensors with known names."""
