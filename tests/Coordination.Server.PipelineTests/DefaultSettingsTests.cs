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
}
