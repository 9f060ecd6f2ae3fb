"""The domain model: the directory (organizations, departments, members, workspaces, apps, with
their history) and the events platforms send."""
