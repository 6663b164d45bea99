"""Operation and fact tests in pyinfra's style: given arguments and fact values, exact commands."""
