"""The composition root: the one package that knows every service and wires them together.

- `carepath.cli`: the `carepath` command (every process type, migrate, tokens, configuration, re-evaluation)
- `carepath.supervisor`: `carepath up`, every part as a supervised child process
- `carepath.apps`: the HTTP apps, assembled from the routers each service owns

`shared/` knows no service and services never import each other (import-linter contracts in .importlinter);
only this package may import them all.
"""
