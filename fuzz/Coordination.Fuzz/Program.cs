using Coordination.Fuzz;
using SharpFuzz;

const string Usage = """
    usage: Coordination.Fuzz TARGET --afl @@        fuzz under afl-fuzz (fuzz/run.sh starts it)
           Coordination.Fuzz TARGET FILE|DIR...     replay inputs through TARGET; exit 1 on a finding
           Coordination.Fuzz --seeds CORPUS_DIR     write the generated seeds (CORPUS_DIR/TARGET/gen-*)
           Coordination.Fuzz --list                 print the targets
    """;

// Instrumented code records coverage in afl's shared memory, which Fuzzer.Run maps; until then (and when the
// assemblies are instrumented but no afl runs) it writes here.
unsafe { SharpFuzz.Common.Trace.SharedMem = (byte*)System.Runtime.InteropServices.NativeMemory.AllocZeroed(1 << 16); }

if (args is ["--list"])
{
    foreach (var name in FuzzTargets.All.Keys) Console.WriteLine(name);
    return 0;
}
if (args is ["--seeds", var corpus])
{
    Seeds.Write(corpus);
    return 0;
}
if (args.Length == 0 || !FuzzTargets.All.ContainsKey(args[0]))
{
    Console.Error.WriteLine(Usage);
    Console.Error.WriteLine("targets: " + string.Join(", ", FuzzTargets.All.Keys));
    return 2;
}

var target = args[0];
if (args is [_, "--afl", var aflInput]) return Fuzz(target, aflInput);
if (args.Length > 1) return Replay(target, args[1..]);
Console.Error.WriteLine(Usage);
return 2;

// afl-fuzz writes each input to aflInput (its @@) and asks for a run; every run reads the file afresh. (Reading
// SharpFuzz's stdin stream instead races with its first, discarded setup run, which can consume the first input.)
static int Fuzz(string target, string aflInput)
{
    // One-time costs (static tables, the first exception thrown) are paid here, outside the allocation check.
    foreach (var (_, _, seed) in Seeds.All().Where(s => s.Target == target))
    {
        try { FuzzTargets.All[target](seed); FuzzTargets.All[target](seed.AsSpan(0, seed.Length / 2)); }
        catch (Exception) { /* a finding in a seed shows up again under afl */ }
    }
    Fuzzer.Run(_ => FuzzTargets.Run(target, File.ReadAllBytes(aflInput)));
    return 0;
}

static int Replay(string target, string[] paths)
{
    var files = paths.SelectMany<string, string>(p => Directory.Exists(p) ? Directory.GetFiles(p).Order() : new[] { p }).ToList();
    var findings = 0;
    foreach (var file in files)
    {
        try
        {
            FuzzTargets.Run(target, File.ReadAllBytes(file));
        }
        catch (Exception e)
        {
            findings++;
            Console.WriteLine($"FINDING {file}: {e}");
        }
    }
    Console.WriteLine($"{target}: {files.Count} inputs, {findings} findings");
    return findings == 0 ? 0 : 1;
}
