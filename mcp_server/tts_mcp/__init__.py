"""kube-tts MCP server: AI agents speak, manage voices and put models to sleep through the router."""
