"""Tests of the MCP adapter (``modelforge.streaming.mcp``) against real servers built with the MCP SDK."""
