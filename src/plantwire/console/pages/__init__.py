"""The console's pages. Importing a module registers its pages (``console_page``); add a new
page's module here."""

from plantwire.console.pages import administration, devices, login, overview

__all__ = ["administration", "devices", "login", "overview"]
