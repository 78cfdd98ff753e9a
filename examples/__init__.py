"""Apps on the jobbridge shim other than the inbox app (`tasks`), one per folder."""
