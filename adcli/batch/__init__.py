"""Running a command over many inputs: arguments, sources, manifests, plans, preflight, the runner, resume, sharding."""
