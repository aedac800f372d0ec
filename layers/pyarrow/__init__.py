"""The pyarrow layer: manylinux_2_28 wheel for the functions' architecture, trimmed."""
