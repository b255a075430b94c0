"""tunnelpi tunnel_sim."""
