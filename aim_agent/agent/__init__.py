"""The agent: state, nodes, VLM backends, the offline scientist, the code sandbox."""
