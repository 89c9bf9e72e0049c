"""The application factory: one server, a router per service, each service able to run alone."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI

import altlas
from altlas.api.admission import Admission, ApiKeys
from altlas.api.errors import install_error_handlers
from altlas.api.routes.alt_files import alt_files_router
from altlas.api.routes.health import health_router
from altlas.api.routes.metrics import metrics_router
from altlas.api.routes.segmentation import segmentation_router
from altlas.api.schemas import ERROR_RESPONSES
from altlas.errors import InvalidInputError
from altlas.observability.gpu import GpuSampler
from altlas.observability.metrics import Metrics
from altlas.segmentation.service import SegmentationService
from altlas.settings import Settings
from altlas.storage.plan_store import PlanStore

if TYPE_CHECKING:
    from altlas.engine.service import ModelService
    from altlas.orchestrator.manager import ModelManager

__all__ = ["SERVICES", "create_app"]


def _model_manager(app: FastAPI, settings: Settings) -> ModelManager:
    """The app's one model manager, made by the first service that needs models: it owns every
    model (budget, eviction, batchers, metrics), the command embedding model included. Models
    marked load_at_start load at start only where the orchestrator is mounted; elsewhere a model
    loads when a request first needs it."""
    if getattr(app.state, "manager", None) is None:
        from altlas.orchestrator.manager import ModelManager

        app.state.manager = ModelManager.from_settings(settings)
    made: ModelManager = app.state.manager
    return made


def _service(app: FastAPI, settings: Settings) -> ModelService:
    """What routes and jobs ask of the models (altlas.engine.service), made once: the models
    loaded in this process and what it keeps beside them (altlas.engine.thread_work.Keeps);
    generations on the app's threads (shut down with it: generations in flight finish first)."""
    if getattr(app.state, "service", None) is None:
        from altlas.api.routes.openai_compat import generation_threads
        from altlas.engine.local import LocalModels
        from altlas.engine.thread_work import Keeps

        manager = _model_manager(app, settings)
        threads = generation_threads()
        app.state.on_stop.append(threads.shutdown)
        app.state.service = LocalModels(manager.loaded, Keeps.of(settings, manager), threads)
    service: ModelService = app.state.service
    return service


def _mount_segmentation(app: FastAPI, settings: Settings) -> None:
    from altlas.api.routes.similarity import similarity_router

    store = PlanStore(settings.data_dir)
    service = SegmentationService(store, max_batch=settings.max_batch_commands)
    app.include_router(segmentation_router(service))
    app.include_router(alt_files_router(store))
    app.include_router(similarity_router(_service(app, settings)))
    app.state.segmentation = service


def _mount_embeddings(app: FastAPI, settings: Settings) -> None:
    from altlas.api.routes.embeddings import embeddings_router

    app.include_router(
        embeddings_router(
            _service(app, settings), settings.command_embedding_model, settings.request_timeout_s
        )
    )


def _mount_orchestrator(app: FastAPI, settings: Settings) -> None:
    from altlas.api.routes.media import media_router
    from altlas.api.routes.models import models_router
    from altlas.api.routes.openai_compat import openai_router
    from altlas.api.routes.search import search_router

    service, timeout_s = _service(app, settings), settings.request_timeout_s
    app.include_router(models_router(service, started=int(time.time())))
    app.include_router(openai_router(service, timeout_s))
    app.include_router(media_router(service, timeout_s))
    app.include_router(search_router(service, timeout_s))
    if getattr(app.state, "manager", None) is not None:  # the models are served here
        app.state.on_start.append(app.state.manager.start)  # those marked load_at_start, in the background


def _mount_jobs(app: FastAPI, settings: Settings) -> None:
    """Async jobs of every kind the mounted services can run, kept in SQLite under the data dir."""
    from altlas.api.job_kinds import job_kinds
    from altlas.api.routes.jobs import jobs_router
    from altlas.jobs.runner import JobRunner
    from altlas.jobs.store import JobStore
    from altlas.observability.jobs import job_metrics

    kinds = job_kinds(app.state)
    if not kinds:
        return
    store = JobStore(settings.data_dir / "jobs.sqlite3", result_ttl_s=settings.job_result_ttl_s)
    runner = JobRunner(store, {name: kind.handler for name, kind in kinds.items()}, settings.job_workers)
    app.include_router(jobs_router(store, runner, kinds))
    app.state.jobs = store
    app.state.metrics.add_collector(lambda: job_metrics(store, runner))
    app.state.on_start.append(runner.start)  # jobs a killed server left running are queued again
    app.state.on_stop.extend([runner.stop, store.close])


def _count_damaged(app: FastAPI) -> None:
    """altlas_damaged_entries_total on /metrics: what the mounted stores found damaged and skipped."""
    from altlas.storage.damage import DamagedEntries, damaged_entries_metrics

    stores: list[DamagedEntries] = []
    if getattr(app.state, "segmentation", None) is not None:
        stores.append(app.state.segmentation.store.damaged)
    if getattr(app.state, "jobs", None) is not None:
        stores.append(app.state.jobs.damaged)
    if stores:
        app.state.metrics.add_collector(lambda: damaged_entries_metrics(*stores))


# name -> function that mounts the service's routers; later services add themselves here.
SERVICES: dict[str, Callable[[FastAPI, Settings], None]] = {
    "segmentation": _mount_segmentation,
    "embeddings": _mount_embeddings,
    "orchestrator": _mount_orchestrator,
}


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.loop = asyncio.get_running_loop()  # where the job workers' requests to the models run
    for hook in app.state.on_start:
        if inspect.isawaitable(started := hook()):
            await started
    yield
    for hook in app.state.on_stop:
        if inspect.isawaitable(stopped := hook()):
            await stopped


def create_app(settings: Settings | None = None, models: ModelService | None = None) -> FastAPI:
    """A FastAPI app with the services named in `settings.services` mounted; their models served
    by `models` (an engine's client: altlas.engine.client.EngineClient), or without it in this
    process (altlas.engine.service.LocalModels)."""
    settings = settings or Settings.from_env()
    unknown = [name for name in settings.services if name not in SERVICES]
    if unknown or not settings.services:
        raise InvalidInputError(
            f"unknown service {unknown[:1]}; known: {', '.join(SERVICES)}", field="services"
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = FastAPI(
        title="altlas",
        version=altlas.__version__,
        summary="ALT_LAS core: command segmentation into ALT task plans, and the models tasks need",
        docs_url="/docs",
        lifespan=_lifespan,
        responses=ERROR_RESPONSES,  # every route's error answers, in the one error shape
    )
    app.state.settings = settings
    app.state.on_start = []
    app.state.on_stop = []
    app.state.metrics = Metrics()  # this app's own registry: GET /metrics
    gpus = GpuSampler()  # NVML readings in the background; absent without NVML
    app.state.metrics.add_collector(gpus.collect)
    app.state.on_start.append(gpus.start)
    app.state.on_stop.append(gpus.stop)
    install_error_handlers(app)
    if models is not None:
        app.state.service = models
    for name in settings.services:
        SERVICES[name](app, settings)
    _mount_jobs(app, settings)
    _count_damaged(app)
    if (service := getattr(app.state, "service", None)) is not None:
        app.state.on_start.insert(0, service.start)  # before anything asks it
        app.state.on_stop.append(service.close)
    app.include_router(health_router(settings.data_dir, lambda: list(settings.services)))
    app.include_router(metrics_router(app.state.metrics, getattr(app.state, "service", None)))
    # One admission layer for every route (altlas.api.admission): request id and log line,
    # API keys, the body read whole within its limits, the concurrency cap, unhandled errors.
    app.add_middleware(
        Admission,
        keys=ApiKeys(settings.api_keys, settings.metrics_require_key, settings.admin_keys),
        limit=settings.max_concurrent_requests, max_body_bytes=settings.max_body_bytes,
        body_timeout_s=settings.body_timeout_s, metrics=app.state.metrics, handlers=app.exception_handlers,
    )  # fmt: skip
    return app
