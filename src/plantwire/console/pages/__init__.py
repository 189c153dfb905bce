"""The console's pages. Importing a module registers its pages (``console_page``); add a new
page's module here."""

from plantwire.console.pages import administration, identifiers, login, overview, products

__all__ = ["administration", "identifiers", "login", "overview", "products"]
