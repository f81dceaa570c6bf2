// An Akka.NET cluster whose coordination ensemble runs inside its own nodes (issue 21):
//  - 5 nodes, Akka.Hosting; nodes 1..3 carry the "coordination" role and embed an ensemble member
//    (WithCoordinationServer): the cluster supplies the membership, Zab decides, no service outside the cluster;
//  - a Cluster Singleton ("scheduler") and a sharded entity type ("accounts"), both under the coordination lease
//    (use-lease), and SBR lease-majority on the same lease;
//  - members reach the ensemble in process; nodes 4 and 5 (no member) through the members' client ports.
//
//   dotnet run --project samples/EmbeddedCluster -c Release                 # the launcher: 5 node processes, a kill, a summary
//   dotnet run --project samples/EmbeddedCluster -c Release -- node --id 1 ... # one node (the launcher prints each node's command)
//
// Lines starting with NODE-UP, ENSEMBLE, SINGLETON-START/STOP, ENTITY-START/STOP, KILLED, NODE-EXIT and SUMMARY are
// meant to be read by scripts and tests; "at=" is Unix time in milliseconds.

using EmbeddedCluster;

return args is ["node", ..]
    ? await ClusterNode.RunAsync(NodeOptions.Parse(args[1..]))
    : await Launcher.RunAsync(LaunchOptions.Parse(args));
