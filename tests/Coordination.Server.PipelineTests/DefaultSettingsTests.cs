using Akka.Configuration;
using Xunit;

namespace Coordination.Server.PipelineTests;

/// <summary>Defaults that protect a deployment (issue 17).</summary>
public sealed class DefaultSettingsTests
{
    [Fact]
    public void The_default_four_letter_word_whitelist_has_no_word_that_prints_session_ids_or_the_tree_digest()
    {
        var words = ServerSettings.Create(ServerSettings.Reference).FourLetterWords;
        foreach (var word in new[] { "cons", "dump", "wchc", "wchp", "hash" }) Assert.DoesNotContain(word, words);
        Assert.Contains("srvr", words);
        Assert.Contains("mntr", words);
    }

    /// <summary>The write batch bound (ReplicaCore.MaxBatch) is the server's HOCON, so that a deployment (or the
    /// bench's --ours-hocon) can set it.</summary>
    [Fact]
    public void A_write_batch_goes_out_at_64_txns_unless_max_write_batch_says_otherwise()
    {
        Assert.Equal(64, ServerSettings.Create(ServerSettings.Reference).MaxWriteBatch);
        var set = ConfigurationFactory.ParseString("coordination.max-write-batch = 16").WithFallback(ServerSettings.Reference);
        Assert.Equal(16, ServerSettings.Create(set).MaxWriteBatch);
    }
}
