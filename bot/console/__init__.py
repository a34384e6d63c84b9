"""工作台: the cadres' web console (issue 8), mounted under /console. Accounts and login so far."""

from bot.console.auth import CurrentUser, current_user, require_role, router

__all__ = ["CurrentUser", "current_user", "require_role", "router"]
