"""The web console: NiceGUI pages served by the platform at ``/``, working offline (NiceGUI's
wheel bundles Vue, Quasar, Tailwind, fonts and icons), reading and writing only through the
platform's own HTTP API in-process. See docs/console.md and docs/architecture.md."""

from plantwire.console.api import ApiClient, ConsoleError, SessionExpired
from plantwire.console.frame import Console, NavItem, console_page, show_error
from plantwire.console.mount import ConsoleState, mount_console

__all__ = [
    "ApiClient",
    "Console",
    "ConsoleError",
    "ConsoleState",
    "NavItem",
    "SessionExpired",
    "console_page",
    "mount_console",
    "show_error",
]
