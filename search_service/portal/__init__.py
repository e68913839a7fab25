"""MkDocs plugin that turns ``playbooks/`` into the portal (registered as ``kb-portal``)."""
