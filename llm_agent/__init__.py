"""tunnelpi llm_agent."""
