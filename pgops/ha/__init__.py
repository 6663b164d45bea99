"""High availability: Patroni clusters on etcd, decided here and deployed by pgops.deploys.cluster."""

#: The states of a member that serves: the leader runs, replicas stream.
RUNNING = ("running", "streaming")
