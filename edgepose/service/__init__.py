"""Service layer: wires capture, inference, decode, track and publish into the running pipeline."""
