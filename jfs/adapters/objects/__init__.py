"""Object-store adapters of `jfs.ports.objects.ObjectStore`: local files, S3, memory (tests) and a fault
injector, chosen by storage type in `registry`."""
