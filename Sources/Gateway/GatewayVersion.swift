/// The gateway's release, as `devenv-gw --version`, `devenv-gw status` and
/// `devenv_gw_build_info{version}` report it.
public enum GatewayVersion {
    public static let current = "0.9.0"
}
