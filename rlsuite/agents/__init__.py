"""The agents, one module per family; each reads top to bottom like its paper. The registry (rlsuite.registry) names them."""
