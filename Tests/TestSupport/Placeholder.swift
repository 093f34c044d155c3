// placeholder until this target gets its tests
