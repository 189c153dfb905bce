"""The console's pages. Importing a module registers its pages (``console_page``); add a new
page's module here."""

from plantwire.console.pages import (
    admin_audit,
    admin_devices,
    admin_roles,
    admin_tokens,
    administration,
    devices,
    identifiers,
    login,
    overview,
    products,
)

__all__ = [
    "admin_audit",
    "admin_devices",
    "admin_roles",
    "admin_tokens",
    "administration",
    "devices",
    "identifiers",
    "login",
    "overview",
    "products",
]
