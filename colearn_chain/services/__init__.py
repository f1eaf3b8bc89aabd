"""Local services the project starts for itself (a private Kubo node, a dev chain), loopback only."""
