"""``plantwire up --demo``: the platform with a demo plant around it.

Like ``cli.py`` and ``app.py`` this package wires pillars together: an identifier hierarchy
whose enterprise node is the platform's own (``ids.demo``), a demo tenant with its user,
prefix and edge node (`provision`), the factory simulator (``sim``), a gateway configured for
its energy meters (`gateway_config`, ``edge``), and an identifier for each finished part
(`traceability`), all in one process (`run`). See docs/demo.md.
"""

__all__: list[str] = []
