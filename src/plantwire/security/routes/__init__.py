"""HTTP API of the security core, under /api/v1."""

from fastapi import APIRouter

from plantwire.security.routes import audit, auth, tenants, tokens, users

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")
for _module in (auth, tenants, users, tokens, audit):
    router.include_router(_module.router)
