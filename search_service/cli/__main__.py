"""``python -m search_service.cli``: the same as ``kb``."""

from search_service.cli import main

main()
