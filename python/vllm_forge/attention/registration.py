"""Registering FORGE_ATTN with vLLM and choosing it for a layer.

Kept apart from backend.py so that the platform module can import it before vLLM's
attention machinery is importable (current_platform is not resolved yet then).
"""

import logging

BACKEND_NAME = "FORGE_ATTN"
BACKEND_PATH = "vllm_forge.attention.backend.ForgeAttentionBackend"

logger = logging.getLogger("vllm.forge.attention")
_logged_declines: set[tuple[str, ...]] = set()


def register_attention_backend() -> None:
    """Make FORGE_ATTN a member of AttentionBackendEnum; safe to call repeatedly."""
    from vllm.v1.attention.backends.registry import AttentionBackendEnum, register_backend

    if BACKEND_NAME not in AttentionBackendEnum.__members__:
        register_backend(BACKEND_NAME, BACKEND_PATH)


def select_attention_backend(selected_backend, attn_selector_config) -> str | None:
    """Our backend's path, or None to let vLLM's platform choose.

    FORGE_ATTN is the default; a user who names another backend gets vLLM's choice.
    A configuration our backend does not support (its own validate_configuration says
    why) falls back to vLLM's own backend with one log line per distinct reason.
    """
    if selected_backend is not None and selected_backend.name != BACKEND_NAME:
        return None
    from vllm_forge.attention.backend import ForgeAttentionBackend

    # No capability: ours accepts any (supports_compute_capability is the base's True).
    reasons = ForgeAttentionBackend.validate_configuration(
        **attn_selector_config._asdict(),
        device_capability=None,  # type: ignore[arg-type]
    )
    if not reasons:
        return BACKEND_PATH
    key = tuple(reasons)
    if key not in _logged_declines:
        _logged_declines.add(key)
        logger.warning(
            "%s does not support this layer (%s); using vLLM's own attention backend",
            BACKEND_NAME,
            "; ".join(reasons),
        )
    return None
