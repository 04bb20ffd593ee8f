"""The labs: the Lab contract, the backend registry, and one module or package per backend."""
