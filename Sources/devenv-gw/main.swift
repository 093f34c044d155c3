print("devenv-gw")
