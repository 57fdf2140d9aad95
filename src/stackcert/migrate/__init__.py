"""Static checks of a model ported into vllm-plugin-FL (`stackcert migrate-check`)."""
