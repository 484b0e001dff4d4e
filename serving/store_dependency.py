"""FastAPI dependency for the store the app's lifespan opened (`app.state.store`).

Routes declare `store: StoreDep`; tests can replace it with
`app.dependency_overrides[get_store] = lambda: other_store`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from store.repository import Store

NO_STORE = "the audit store is not open: the service is starting, shutting down, or could not reach its database"


async def get_store(request: Request) -> Store:
    """The app's store; 503 when there is none (before start-up or after shutdown)."""
    store = getattr(request.app.state, "store", None)
    if store is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=NO_STORE)
    return store


StoreDep = Annotated[Store, Depends(get_store)]
