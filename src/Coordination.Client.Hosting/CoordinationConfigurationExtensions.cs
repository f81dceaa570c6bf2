using Coordination.Client;
using Coordination.Client.Hosting;

// In the namespace of IConfigurationBuilder, as Microsoft.Extensions' own Add* methods, so that no using is needed.
namespace Microsoft.Extensions.Configuration;

public static class CoordinationConfigurationExtensions
{
    /// <summary>
    /// Adds the znode subtree at <paramref name="root"/> as configuration (<c>{root}/Db/Timeout</c> is <c>Db:Timeout</c>),
    /// reloaded on every change. Required unless <paramref name="optional"/>: see <see cref="CoordinationConfigurationSource.Optional"/>.
    /// </summary>
    public static IConfigurationBuilder AddCoordination(this IConfigurationBuilder builder, string connectString, string root, bool optional = false) =>
        builder.AddCoordination(source =>
        {
            source.Client = new CoordinationClientOptions { ConnectString = connectString };
            source.Root = root;
            source.Optional = optional;
        });

    /// <summary>As <see cref="AddCoordination(IConfigurationBuilder, string, string, bool)"/>, with every setting of the source.</summary>
    public static IConfigurationBuilder AddCoordination(this IConfigurationBuilder builder, Action<CoordinationConfigurationSource> configure)
    {
        var source = new CoordinationConfigurationSource();
        configure(source);
        return builder.Add(source);
    }
}
