"""Options of the ``kb-portal`` MkDocs plugin."""

from __future__ import annotations

from mkdocs.config import config_options as c
from mkdocs.config.base import Config


# mkdocs' Config.__init_subclass__ (which collects the options below) has no annotations.
class PortalConfig(Config):  # type: ignore[no-untyped-call]
    """The plugin's options, each with its default, as written under ``kb-portal:`` in mkdocs.yml."""

    # Turn the plugin off without removing it from mkdocs.yml.
    enabled = c.Type(bool, default=True)
    # Folder of playbook Markdown, relative to mkdocs.yml, mounted at the site root.
    content_dir = c.Type(str, default="playbooks")
    # Restricted pages (front matter `access:`) are left out of the static site unless this is true.
    include_restricted = c.Type(bool, default=False)
    # Generate catalog pages by type, audience and tag.
    catalog = c.Type(bool, default=True)
    # Order of top-level navigation sections, by folder name; others follow alphabetically.
    section_order = c.Type(list, default=[])
    # Display titles for folders whose automatic title reads badly (e.g. mlops: MLOps).
    section_titles = c.Type(dict, default={})
    # ISO date used as "today" for stale banners (default: KB_TODAY or the real date).
    today = c.Optional(c.Type(str))
