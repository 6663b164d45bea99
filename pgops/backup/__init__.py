"""pgBackRest backups and everything that proves them: configuration, TLS material, timers,
the repository, health rules, restore and drills. (Kept free of imports: rules.py runs alone.)"""
