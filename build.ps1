# Thin PowerShell wrapper over the dotnet CLI: ./build.ps1 [build|test|publish|run]
param([ValidateSet("build", "test", "publish", "run")][string]$Target = "build", [string]$Configuration = "Release")
$ErrorActionPreference = "Stop"
switch ($Target) {
  "build"   { dotnet build Coordination.Akka.sln -c $Configuration }
  "test"    { dotnet build Coordination.Akka.sln -c $Configuration; if ($LASTEXITCODE -eq 0) { dotnet test Coordination.Akka.sln -c $Configuration --no-build } }
  "publish" { dotnet publish src/Coordination.Server -c $Configuration -o artifacts/server }
  "run"     { dotnet run --project src/Coordination.Server -c $Configuration }
}
exit $LASTEXITCODE
