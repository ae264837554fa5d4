"""The central operator: handlers, webhook, scheduler, inventory, auth manager."""
