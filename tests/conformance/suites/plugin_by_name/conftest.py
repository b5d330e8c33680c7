pytest_plugins = ["helper_plugin"]
