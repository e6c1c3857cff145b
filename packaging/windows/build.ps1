# Builds the RadLens bundle and installer on Windows (untested in this project's CI, which is Linux).
#
#   powershell -ExecutionPolicy Bypass -File packaging\windows\build.ps1            # CPU flavour
#   $env:RADLENS_FLAVOUR = "cuda"; powershell -File packaging\windows\build.ps1   # CUDA flavour
#
# Needs: Python 3.11+ with .venv set up (py -3.11 -m venv .venv; .venv\Scripts\pip install torch==2.13.0
# --index-url <PyTorch CPU or CUDA index>; .venv\Scripts\pip install -e ".[dev,deepbet]"), and
# Inno Setup 6 (iscc.exe on PATH or in its default folder) for the installer.
# Output: dist\radlens\radlens.exe (one-dir) and dist\RadLens-<version>-windows-x64-<flavour>-setup.exe.
$ErrorActionPreference = "Stop"
Set-Location (Join-Path $PSScriptRoot "..\..")
$py = ".venv\Scripts\python.exe"
if (-not (Test-Path $py)) { throw "no .venv: create it first (see the comment at the top of this script)" }
$flavour = if ($env:RADLENS_FLAVOUR) { $env:RADLENS_FLAVOUR } else { "cpu" }
$cuda = & $py -c "import torch; print(torch.version.cuda or '')"
if ($flavour -eq "cpu" -and $cuda) { throw "the CPU flavour needs the CPU torch wheel; .venv has CUDA $cuda" }
if ($flavour -eq "cuda" -and -not $cuda) { throw "the CUDA flavour needs a CUDA torch in .venv" }

$version = & $py -c "from importlib.metadata import version; print(version('radlens'))"
$env:PYTHONHASHSEED = "0"
$env:RADLENS_FLAVOUR = $flavour
Write-Host "build: RadLens $version, $flavour flavour, windows-x64"
Remove-Item -Recurse -Force dist\radlens -ErrorAction SilentlyContinue
$t0 = Get-Date
& $py -m PyInstaller --noconfirm --log-level WARN --distpath dist --workpath build\pyinstaller packaging\radlens.spec
if ($LASTEXITCODE -ne 0) { throw "PyInstaller failed" }
& $py packaging\collect_licences.py dist\radlens build\pyinstaller\radlens\bundled-top-level.txt
if ($LASTEXITCODE -ne 0) { throw "licence collection failed" }
Set-Content -Path dist\radlens\VERSION -Value $version
$t1 = Get-Date

$iscc = (Get-Command iscc.exe -ErrorAction SilentlyContinue).Source
if (-not $iscc) { $iscc = "${env:ProgramFiles(x86)}\Inno Setup 6\ISCC.exe" }
if (Test-Path $iscc) {
  & $iscc /Qp "/DAppVersion=$version" "/DFlavour=$flavour" packaging\windows\radlens.iss
  if ($LASTEXITCODE -ne 0) { throw "Inno Setup failed" }
  $installer = "dist\RadLens-$version-windows-x64-$flavour-setup.exe"
} else {
  Write-Warning "Inno Setup not found: making a zip instead of an installer"
  $installer = "dist\radlens-$version-windows-x64-$flavour.zip"
  Compress-Archive -Path dist\radlens -DestinationPath $installer -Force
}

$disk = (Get-ChildItem -Recurse dist\radlens | Measure-Object -Property Length -Sum).Sum / 1MB
$packed = (Get-Item $installer).Length / 1MB
Write-Host ""
Write-Host ("== Budget: bundle {0:N0} MiB (target 800), installer {1:N0} MiB (target 350), build {2:N0} s" -f $disk, $packed, ($t1 - $t0).TotalSeconds)
Write-Host "build: done: dist\radlens\radlens.exe and $installer"
