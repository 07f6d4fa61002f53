"""The agent: state, nodes, VLM backends, scientists (VLM or plugin), the code sandbox."""
