using BenchmarkDotNet.Attributes;
using Coordination.Core;
using Coordination.Protocol;

namespace Coordination.Benchmarks;

/// <summary>DataTree get (Find), setData and create (Apply of a prepared txn) on a tree of 10,000 znodes.</summary>
[MemoryDiagnoser]
public class DataTreeBenchmarks
{
    private const int Nodes = 10_000;
    private const int CreatesPerInvoke = 1_000;
    private DataTree _tree = null!;
    private string[] _paths = null!;
    private SetDataTxn[] _sets = null!;
    private CreateTxn[] _creates = null!;
    private long _zxid;
    private int _next;
    private int _createRound;

    [GlobalSetup]
    public void Setup()
    {
        _tree = new DataTree();
        var value = new byte[100];
        Apply(OpCode.Create, new CreateTxn("/bench", [], Acl.OpenAclUnsafe, 0, 1));
        Apply(OpCode.Create, new CreateTxn("/bench/data", [], Acl.OpenAclUnsafe, 0, 1));
        _paths = new string[Nodes];
        _sets = new SetDataTxn[Nodes];
        for (var i = 0; i < Nodes; i++)
        {
            _paths[i] = $"/bench/data/n{i:D7}";
            Apply(OpCode.Create, new CreateTxn(_paths[i], value, Acl.OpenAclUnsafe, 0, i + 1));
            _sets[i] = new SetDataTxn(_paths[i], value, -1);
        }
    }

    [IterationSetup(Target = nameof(Create))]
    public void SetupCreates()
    {
        // A fresh parent per iteration, so every create adds a new znode.
        var parent = $"/bench/c{_createRound++}";
        Apply(OpCode.Create, new CreateTxn(parent, [], Acl.OpenAclUnsafe, 0, _createRound));
        _creates = new CreateTxn[CreatesPerInvoke];
        for (var i = 0; i < _creates.Length; i++)
            _creates[i] = new CreateTxn($"{parent}/s{i:D7}", new byte[100], Acl.OpenAclUnsafe, 0, i + 1);
    }

    private ApplyResult Apply(OpCode type, Txn txn) => _tree.Apply(new TxnHeader(1, 1, ++_zxid, 1_700_000_000_000, type), txn);

    [Benchmark]
    public Stat Get()
    {
        var node = _tree.Find(_paths[_next++ % Nodes])!;
        return node.Stat;
    }

    [Benchmark]
    public ApplyResult SetData() => Apply(OpCode.SetData, _sets[_next++ % Nodes]);

    [Benchmark(OperationsPerInvoke = CreatesPerInvoke)]
    public void Create()
    {
        foreach (var c in _creates) Apply(OpCode.Create, c);
    }
}

/// <summary>The txn serializer: header + body as journalled and replicated.</summary>
[MemoryDiagnoser]
public class TxnSerializerBenchmarks
{
    private readonly TxnHeader _header = new(0x1234, 7, 0x1_0000_0042, 1_700_000_000_000, OpCode.SetData);
    private readonly TxnHeader _createHeader = new(0x1234, 8, 0x1_0000_0043, 1_700_000_000_000, OpCode.Create);
    private SetDataTxn _set = null!;
    private CreateTxn _create = null!;
    private byte[] _setBytes = null!, _createBytes = null!;

    [GlobalSetup]
    public void Setup()
    {
        _set = new SetDataTxn("/bench/data/n0000042", new byte[100], 3);
        _create = new CreateTxn("/bench/w-1/s1-42", new byte[100], Acl.OpenAclUnsafe, 0, 7);
        _setBytes = Txns.Serialize(_header, _set);
        _createBytes = Txns.Serialize(_createHeader, _create);
    }

    [Benchmark] public byte[] SerializeSetData() => Txns.Serialize(_header, _set);
    [Benchmark] public byte[] SerializeCreate() => Txns.Serialize(_createHeader, _create);
    [Benchmark] public Txn DeserializeSetData() => Txns.Deserialize(_setBytes).Txn;
    [Benchmark] public Txn DeserializeCreate() => Txns.Deserialize(_createBytes).Txn;
}

/// <summary>WatchTable.Trigger with 1 and 10,000 watchers on one znode.</summary>
[MemoryDiagnoser]
public class WatchTriggerBenchmarks
{
    private const string Hot = "/bench/hot";
    private WatchTable _persistent = null!;
    private WatchTable _oneShot = null!;

    [Params(1, 10_000)]
    public int Watchers;

    [GlobalSetup]
    public void Setup()
    {
        _persistent = new WatchTable();
        for (var s = 1; s <= Watchers; s++) _persistent.Add(Hot, s, WatchKind.Persistent);
        _oneShot = new WatchTable();
    }

    /// <summary>Persistent watches: the trigger alone (they stay registered).</summary>
    [Benchmark]
    public int TriggerPersistent() => _persistent.Trigger(new WatchTrigger(Hot, EventType.NodeDataChanged)).Count;

    /// <summary>One-shot data watches (getData with watch): register all, then the trigger that consumes them.</summary>
    [Benchmark]
    public int RegisterAndTriggerOneShot()
    {
        for (var s = 1; s <= Watchers; s++) _oneShot.Add(Hot, s, WatchKind.Data);
        return _oneShot.Trigger(new WatchTrigger(Hot, EventType.NodeDataChanged)).Count;
    }
}
