"""The Sisong service: webhook, app, configuration, CLI and the outbound WeChat client."""
