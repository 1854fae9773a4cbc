from importlib.metadata import entry_points

# Load the jfs pytest plugin from the source tree unless the installed package already registers it.
pytest_plugins = (
    []
    if any(ep.value == "jfs.testing.plugin" for ep in entry_points(group="pytest11"))
    else ["jfs.testing.plugin"]
)
